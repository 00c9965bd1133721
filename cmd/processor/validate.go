package main

import (
	"flag"
	"fmt"

	"github.com/cairn-cjo/cairn/operators"
)

func cmdValidate(args []string) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	var c Config
	c.bindFlags(fs)
	if err := parseConfig(fs, args); err != nil {
		return err
	}
	if c.Definitions == "" && fs.NArg() == 1 {
		c.Definitions = fs.Arg(0)
	}
	if err := c.Validate(); err != nil {
		return err
	}
	ecfg, err := c.Engine()
	if err != nil {
		return err
	}
	ecfg.EnsureDefaults()
	if err := ecfg.Validate(); err != nil {
		return err
	}
	set, err := operators.Load(c.Definitions, operators.Options{AggregatesTopic: ecfg.AggregatesTopic()})
	if err != nil {
		return fmt.Errorf("invalid definitions:\n%w", err)
	}
	fmt.Printf("ok: %d definitions, %d operators\n", len(set.Docs), len(set.Operators))
	return nil
}
