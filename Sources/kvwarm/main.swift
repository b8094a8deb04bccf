print("kvwarm")
