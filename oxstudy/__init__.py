"""oxstudy: controlled comparisons of LLM post-training algorithms.

Data flows one way: spec -> plan -> execute -> store -> analyze -> report / verify.
Importing the package is cheap: no torch, no TRL; heavy modules import lazily.
"""

__version__ = "0.1.0"
