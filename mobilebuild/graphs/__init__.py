"""Everything that reads or writes a GraphDef. Modules here may import TensorFlow (lazily)."""
