"""SageMaker's side of the container: the training and serving contracts, around your model.

Your model lives in predictor.py (its hooks; see byoc/hooks.py and byoc/defaults.py). Nothing in
this package needs changing to bring another model.
"""
