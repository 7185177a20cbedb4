module github.com/labctl/labctl

go 1.26.8

require (
	github.com/vishvananda/netns v0.0.5
	go.yaml.in/yaml/v3 v3.0.6
)

require golang.org/x/sys v0.49.0 // indirect
