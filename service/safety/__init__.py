"""Clinical safety (DCB0129): the hazard log as data, the evidence each control's tests give, and the documents
a clinical safety officer reviews (`make safety`)."""
