<?php
// Worker for the integration tests (cmd/gearsched/clients_test.go).
//
// Usage: php php_worker.php HOST PORT COUNT
//
// Registers the functions below, runs exactly COUNT jobs, printing one
// transcript line per job ("job FUNCTION WORKLOAD"), and exits 0. Any error
// from GearmanWorker::work() is printed and the exit status is 1.
//
// A "gate" is a FIFO created by the Go test: opening it for reading blocks
// until a writer (the client script) opens it, which lets a job stay running
// until the client has made its observations, without sleeping.

if ($argc != 4) {
    fwrite(STDERR, "usage: php_worker.php HOST PORT COUNT\n");
    exit(2);
}
[$_, $host, $port, $count] = $argv;

function gate(string $path): string {
    $f = fopen($path, "r");
    if ($f === false) {
        throw new RuntimeException("cannot open gate $path");
    }
    $line = fgets($f);
    fclose($f);
    return trim((string)$line);
}

$runs = 0;
$w = new GearmanWorker();
$w->setId("php-worker");
$w->addServer($host, (int)$port);

// php_rev returns the reversed workload.
$w->addFunction("php_rev", function (GearmanJob $job) {
    echo "job php_rev ", $job->workload(), "\n";
    return strrev($job->workload());
});

// php_rec records the order in which jobs are handed out.
$w->addFunction("php_rec", function (GearmanJob $job) {
    echo "job php_rec ", $job->workload(), "\n";
    return $job->workload();
});

// php_events sends data, a warning and a status, then ends as the workload
// says: "complete", "fail" or "exception".
$w->addFunction("php_events", function (GearmanJob $job) {
    $wl = $job->workload();
    echo "job php_events $wl\n";
    $job->sendData("data-$wl");
    $job->sendWarning("warn-$wl");
    $job->sendStatus(1, 3);
    switch ($wl) {
    case "fail":
        $job->sendFail();
        return null;
    case "exception":
        $job->sendException("exc-$wl");
        return null;
    default:
        return "result-$wl";
    }
});

// php_gated waits for its gate (workload "GATE|PAYLOAD") and returns
// "runN:PAYLOAD", N counting the executions of this worker process.
$w->addFunction("php_gated", function (GearmanJob $job) use (&$runs) {
    [$gate, $payload] = explode("|", $job->workload(), 2);
    $runs++;
    echo "job php_gated $payload\n";
    gate($gate);
    return "run$runs:$payload";
});

// php_progress reports 1/2, waits for its gate (workload = gate path),
// reports 2/2 and completes.
$w->addFunction("php_progress", function (GearmanJob $job) {
    echo "job php_progress\n";
    $job->sendStatus(1, 2);
    gate($job->workload());
    $job->sendStatus(2, 2);
    return "progress-done";
});

for ($i = 0; $i < (int)$count; $i++) {
    if (!$w->work()) {
        echo "work failed: ", $w->returnCode(), " ", $w->error(), "\n";
        exit(1);
    }
}
echo "worker done\n";
