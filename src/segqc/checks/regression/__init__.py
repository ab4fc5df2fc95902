"""Regression checks: is the model at least as good as the released one, on the same images?"""
