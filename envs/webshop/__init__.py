"""WebShop: the text shop (search, results, item pages, reward) reimplemented on its real data format."""
