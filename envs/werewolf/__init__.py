"""Werewolf: multi-agent social deduction with free-form speech."""
