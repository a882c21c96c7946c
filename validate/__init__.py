"""mtsp.validate"""
