// The cron oracle of tests/test_chart_checks.py: Kubernetes validates a CronJob schedule with
// robfig/cron v3 ParseStandard. Reads one schedule per line; prints "ok" or the parser's error.
package main

import (
	"bufio"
	"fmt"
	"os"

	"github.com/robfig/cron/v3"
)

func main() {
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if _, err := cron.ParseStandard(in.Text()); err != nil {
			fmt.Println("error:", err)
		} else {
			fmt.Println("ok")
		}
	}
}
