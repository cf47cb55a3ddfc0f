"""The judge's core: what compares two sides' numbers and reports the verdict, whatever produced them.

quantities (what is compared, step by step), compare (one leaf against its tolerance; two records paired),
tolerances (each with the noise it was set from), variants (a trace's facts against its declaration), report (the
tally, the first divergence, the verdict line, the table), formats (JSON, JUnit, Markdown, HTML), plot.

May import: parity.errors, pure, numpy (matplotlib for the plot). Never the sources, the diagnosis or a command.
"""
