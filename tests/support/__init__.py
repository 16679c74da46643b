"""Plain helpers shared by test modules and conftests.

Fixtures live in conftest.py files; anything a test module imports lives here, so no module ever imports a
conftest (pytest loads those itself, and importing one twice registers its fixtures twice).
"""
