// Command wait-for-data is the asyncio streams documentation's "Register an
// open socket to wait for data using streams", with sluice: one end of a
// socket pair waits for what the other sends.
package main

import (
	"fmt"
	"io"
	"log"
	"os"

	"github.com/sluice-go/sluice"
)

func main() {
	if err := waitForData(os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func waitForData(out io.Writer) error {
	// Create a pair of connected sockets (socket.socketpair() with
	// open_connection(sock=rsock)).
	rconn, wconn, err := sluice.Pipe()
	if err != nil {
		return err
	}
	defer rconn.Close()
	defer wconn.Close()

	// Simulate the reception of data from the network. Write only queues the
	// bytes: the Conn's writer goroutine sends them.
	wconn.Write([]byte("abc"))

	// Wait for data.
	data := make([]byte, 100)
	n, err := rconn.Read(data)
	if err != nil {
		return err
	}

	// Got data, we are done: close the sockets (the deferred Closes).
	fmt.Fprintln(out, "Received:", string(data[:n]))
	return nil
}
