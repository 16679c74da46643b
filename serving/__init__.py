"""The TensorFlow side of prediction: load a saved model, compile it, predict batches.

Only the worker, the trainer and the CLI import this package; core/ and api/ never do. TensorFlow is imported here,
first, by serving.tensorflow_import (the system's SQLite before it; its start-up lines kept out of quiet output).
"""

from serving.tensorflow_import import import_tensorflow

import_tensorflow()
