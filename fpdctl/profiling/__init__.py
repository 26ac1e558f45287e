"""Cost accounting: parameters, MACs, element-wise work and activation memory."""
