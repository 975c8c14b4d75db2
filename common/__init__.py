"""Ground-floor helpers every package may import: it imports no other package of ours."""
