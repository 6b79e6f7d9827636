"""The master side of the node API (flotilla.node.v1.Nodes); see README.md."""
