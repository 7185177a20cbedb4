module github.com/labctl/labctl

go 1.26.8

require (
	github.com/vishvananda/netns v0.0.5
	go.yaml.in/yaml/v3 v3.0.6
)

require (
	github.com/gopacket/gopacket v1.7.7 // indirect
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/spf13/cobra v1.10.2 // indirect
	github.com/spf13/pflag v1.0.9 // indirect
	github.com/vishvananda/netlink v1.3.1 // indirect
	golang.org/x/sys v0.49.0 // indirect
)
