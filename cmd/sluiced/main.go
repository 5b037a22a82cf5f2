// Command sluiced is the Sluice broker.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stdout, "sluiced: the Kafka-protocol broker is not built yet (issue: A single-node broker that speaks the Kafka protocol); the segment log it stands on is in log/.")
}
