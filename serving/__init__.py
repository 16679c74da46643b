"""The TensorFlow side of prediction: load a saved model, compile it, predict batches.

Only the worker, the trainer and the CLI import this package; core/ and api/ never do.
"""
