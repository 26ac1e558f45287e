"""The command-line interface: one module per subcommand, thin over the core.

Modules here import torch, onnxruntime and matplotlib only inside command bodies, so that
``fpdctl --help`` stays fast.
"""
