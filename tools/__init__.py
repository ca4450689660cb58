"""Maintainers' tools for "MNIST under 8k": the notebook runner, README generation, the benchmark, the search.

A learner never needs these; they import ``helpers``, never the other way round.
"""
