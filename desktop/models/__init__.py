"""Qt adapter models over plain job dicts; they do no I/O."""
