// Wrapper that builds the released etcd server (pinned in go.mod) from
// source. Mirrors go.etcd.io/etcd's own main.go.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
