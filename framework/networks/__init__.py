"""Network kinds: each turns its config nodes and the data into the Context analyses read."""
