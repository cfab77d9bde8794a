"""Readers of the source datasets (PTB-XL, MIMIC-IV-ECG) and the synthetic demo writer."""
