"""Controllers: one module per controller beside its pure reconciler in master/reconcile (see base.py, manager.py)."""
