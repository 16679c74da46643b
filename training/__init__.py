"""Everything that turns labelled text into a saved model: import, clean, balance, train, evaluate, plot."""
