"""mtsp.numeric"""
