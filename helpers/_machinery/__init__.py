"""Machinery the lesson needs but does not teach; a learner can skip this folder.

* ``mnist_files``: fetching MNIST and checking every byte of it, offline if need be.
* ``cuda_graph``: on an NVIDIA GPU, the training step recorded once and replayed.
* ``cpu``: one malloc setting that speeds up training on Linux CPUs, and the device in words.
* ``smoke``: the test command's quick mode (``MNIST8K_SMOKE=1``) and where its records go.

Each is reached from the lesson's modules through one call.
"""
