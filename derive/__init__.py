"""mtsp.derive"""
