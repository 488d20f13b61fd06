"""ALFWorld (TextWorld engine) household tasks as text envs."""
