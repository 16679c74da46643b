"""The product CLI (`furiwake ...`) and the process supervisor behind `make run`."""
