"""The INSTANCE side: one generic pathway interpreter running on Temporal."""
