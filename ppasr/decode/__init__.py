"""Decoding CTC output to text: greedy, prefix beam search with KenLM fusion, and building n-gram LMs."""
