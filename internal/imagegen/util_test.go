package imagegen

import (
	"os"
	"testing"
)

var testDir string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "mica-imagegen-test-")
	if err != nil {
		panic(err)
	}
	testDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

func osMkdirTemp() (string, error) { return testDir, nil }
