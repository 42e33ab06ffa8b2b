"""The DCP drill: prove that DCP cancels one product's orders, and measure how long after a cut it does."""
