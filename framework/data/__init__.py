"""Stage 1, data: the Data container, splits and scaling (base), and one module per dataset."""
