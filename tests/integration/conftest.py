pytest_plugins = ["tests.support.devchain"]
