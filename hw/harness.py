"""placeholder"""
class InferenceHarness: pass
