"""Pricemon's built-in pricing strategies.

They register in the `pricemon.strategies` entry-point group exactly as a third-party package
would, and import nothing but `monitor.pricing`'s public API.
"""
