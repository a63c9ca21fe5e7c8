"""pagemap: an executable, contract-checked and machine-verified specification
of the Akaros page-cache rewrite of February 2014 (kern/src/pagemap.c and the
mm.c page-fault changes of that commit)."""

__version__ = "0.1.0"
