"""Stage 7, tracking: the MLflow store and runs (store), tags, UI links, and the model flavour."""
