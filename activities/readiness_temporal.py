"""(being written)"""

UNDECLARED: tuple = ()
