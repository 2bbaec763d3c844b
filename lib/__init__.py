"""repeat-or-not: a CPU-to-cluster reproduction of Xue et al. (2023), "To Repeat or Not To Repeat"."""
