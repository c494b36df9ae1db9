package gearman_test

import (
	"context"
	"fmt"
	"log"
	"strconv"
	"time"

	"github.com/gearsched/gearsched/gearman"
)

// Submit a background job, ask for its status, and read the server's
// function table.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := gearman.Dial(ctx, "127.0.0.1:4730")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))

	handle, err := c.Submit(gearman.SubmitJobBg, "reverse", "order-42", []byte("hello"))
	if err != nil {
		log.Fatal(err) // a *gearman.ServerError when the server answered ERROR
	}
	st, err := c.Status(handle)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(handle, "known:", st.Known, "running:", st.Running)

	status, err := c.Admin("status")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(status)
}

// Run a job at a given second with SUBMIT_JOB_EPOCH (gearsched fires it
// then; gearmand 1.1.x waits for something else to wake a worker).
func ExampleClient_Submit_epoch() {
	c, err := gearman.Dial(context.Background(), "127.0.0.1:4730")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	at := time.Now().Add(90 * time.Second).Unix()
	handle, err := c.Submit(gearman.SubmitJobEpoch, "send_reminder", "reminder-7",
		[]byte(strconv.FormatInt(at, 10)), []byte(`{"user":7}`))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("scheduled as", handle)
}

// Pipeline many submissions: one write, then the replies in order.
func ExampleClient_Queue() {
	c, err := gearman.Dial(context.Background(), "127.0.0.1:4730")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	for i := range 100 {
		c.Queue(gearman.SubmitJobBg, []byte("resize"), []byte("img-"+strconv.Itoa(i)), []byte("..."))
	}
	if err := c.Flush(); err != nil {
		log.Fatal(err)
	}
	for range 100 {
		p, err := c.Recv()
		if err != nil {
			log.Fatal(err)
		}
		switch p.Type {
		case gearman.JobCreated:
			fmt.Println("created", string(p.Args[0]))
		case gearman.Error:
			fmt.Println("refused:", string(p.Args[0]), string(p.Args[1]))
		}
	}
}
