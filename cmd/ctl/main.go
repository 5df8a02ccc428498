// Command brinectl is brine's operator CLI; everything lives in pkg/ctl.
package main

import (
	"os"

	"github.com/brine-cm/brine/pkg/ctl"
)

func main() { os.Exit(ctl.Execute()) }
