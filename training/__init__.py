"""Training and judging the models on labelled faces: datasets, fitting, evaluation and the
model card. A leaf: nothing in the product imports it; the CLI's dataset, train and evaluate
commands do."""
