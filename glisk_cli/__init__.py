"""glisk: the operator's toolkit for the GLISK NFT pipeline database."""

__version__ = "0.1.0"
