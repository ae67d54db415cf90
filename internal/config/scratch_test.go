package config

import (
	"fmt"
	"os"
	"testing"
)

func TestScratch(t *testing.T) {
	cfg, err := Load(os.Getenv("SCRATCH"), os.LookupEnv)
	fmt.Println(err)
	if cfg != nil {
		fmt.Printf("%+v\n", *cfg)
		fmt.Println(cfg.Warnings())
	}
}
