<?php
// Client scenarios for the integration tests (cmd/gearsched/clients_test.go).
//
// Usage: php php_client.php HOST PORT SCENARIO [ARGS...]
//
// Each scenario prints a line-based transcript that the Go test compares
// with the expected one. Job handles differ between servers, so they are
// never printed; the scripts print facts about them instead ("handle ok",
// "same handle yes"). Every call is bounded by the client timeout.

if ($argc < 4) {
    fwrite(STDERR, "usage: php_client.php HOST PORT SCENARIO [ARGS...]\n");
    exit(2);
}
$host = $argv[1];
$port = (int)$argv[2];
$scenario = $argv[3];
$args = array_slice($argv, 4);

function client(string $host, int $port): GearmanClient {
    $c = new GearmanClient();
    $c->addServer($host, $port);
    $c->setTimeout(10000); // ms
    return $c;
}

// handleOK describes a job handle without printing it.
function handleOK($h): string {
    return (is_string($h) && preg_match('/^[\x21-\x7e]{1,63}$/', $h)) ? "ok" : "bad(" . var_export($h, true) . ")";
}

// statusLine prints a jobStatus() result.
function statusLine(array $s): string {
    return sprintf("known=%d running=%d %d/%d", $s[0], $s[1], $s[2], $s[3]);
}

// openGate releases a job waiting in php_worker.php's gate().
function openGate(string $path): void {
    $f = fopen($path, "w");
    fwrite($f, "go\n");
    fclose($f);
}

// waitStatus polls jobStatus until $pred holds, for at most 10 s: the
// progress of a job is not pushed to a client that did not submit it.
function waitStatus(GearmanClient $c, string $handle, callable $pred): array {
    $deadline = microtime(true) + 10;
    do {
        $s = $c->jobStatus($handle);
        if ($pred($s)) {
            return $s;
        }
        usleep(5000);
    } while (microtime(true) < $deadline);
    return $s;
}

$c = client($host, $port);

switch ($scenario) {
case "do":
    // Foreground calls; a php_rev worker runs them.
    foreach (["doNormal" => "normal", "doHigh" => "high", "doLow" => "low"] as $method => $payload) {
        $r = $c->$method("php_rev", $payload);
        echo "$method $r rc=", $c->returnCode(), "\n";
    }
    break;

case "bg":
    // Background calls on php_rec while no worker runs.
    $h = $c->doBackground("php_rec", "n1");
    echo "doBackground handle ", handleOK($h), " rc=", $c->returnCode(), "\n";
    $h = $c->doHighBackground("php_rec", "h1");
    echo "doHighBackground handle ", handleOK($h), " rc=", $c->returnCode(), "\n";
    $h = $c->doLowBackground("php_rec", "l1");
    echo "doLowBackground handle ", handleOK($h), " rc=", $c->returnCode(), "\n";

    // Two doBackground with the same unique: one job, one handle.
    $h1 = $c->doBackground("php_rec", "n2", "bg-uniq");
    $h2 = $c->doBackground("php_rec", "n2-ignored", "bg-uniq");
    echo "doBackground same unique: same handle ", ($h1 === $h2 ? "yes" : "no"), "\n";
    echo "jobStatus queued ", statusLine($c->jobStatus($h1)), "\n";
    echo "jobStatus unknown ", statusLine($c->jobStatus("H:nosuch:999")), "\n";

    // Background tasks: two addTaskBackground with the same unique (one
    // job, one handle), one addTaskHighBackground, one addTaskLowBackground.
    $handles = [];
    $c->setCreatedCallback(function (GearmanTask $t, $x) use (&$handles) {
        $handles[$x] = $t->jobHandle();
    });
    $c->addTaskBackground("php_rec", "n3", "n3-a", "task-uniq");
    $c->addTaskBackground("php_rec", "n3", "n3-b", "task-uniq");
    $c->addTaskHighBackground("php_rec", "h2", "h2");
    $c->addTaskLowBackground("php_rec", "l2", "l2");
    $ok = $c->runTasks();
    echo "runTasks ", var_export($ok, true), "\n";
    ksort($handles);
    foreach ($handles as $x => $h) {
        echo "$x created handle ", handleOK($h), "\n";
    }
    echo "addTaskBackground same unique: same handle ",
        (($handles["n3-a"] ?? 1) === ($handles["n3-b"] ?? 2) ? "yes" : "no"), "\n";
    echo "distinct handles ", count(array_unique($handles)), "\n";
    break;

case "callbacks":
    // One task per way a job can end; the worker sends data, a warning and
    // a status first. Lines start with the task's label (its context).
    $c->setCreatedCallback(function (GearmanTask $t, $x) { echo "$x created\n"; });
    $c->setDataCallback(function (GearmanTask $t, $x) { echo "$x data ", $t->data(), "\n"; });
    $c->setWarningCallback(function (GearmanTask $t, $x) { echo "$x warning ", $t->data(), "\n"; });
    $c->setStatusCallback(function (GearmanTask $t, $x) {
        echo "$x status ", $t->taskNumerator(), "/", $t->taskDenominator(), "\n";
    });
    $c->setCompleteCallback(function (GearmanTask $t, $x) { echo "$x complete ", $t->data(), "\n"; });
    $c->setFailCallback(function (GearmanTask $t, $x) { echo "$x fail\n"; });
    $c->setExceptionCallback(function (GearmanTask $t, $x) { echo "$x exception ", $t->data(), "\n"; });
    $c->addTask("php_events", "complete", "complete");
    $c->addTaskHigh("php_events", "fail", "fail");
    $c->addTaskLow("php_events", "exception", "exception");
    $ok = $c->runTasks();
    echo "runTasks ", var_export($ok, true), "\n";
    break;

case "status":
    // ARGS: GATE. A bg php_progress job reports 1/2 and waits at the gate.
    $gate = $args[0];
    $h = $c->doBackground("php_progress", $gate);
    echo "doBackground handle ", handleOK($h), "\n";
    $s = waitStatus($c, $h, fn ($s) => $s[1] && $s[2] == 1);
    echo "jobStatus running ", statusLine($s), "\n";
    openGate($gate);
    $s = waitStatus($c, $h, fn ($s) => !$s[0]);
    echo "jobStatus finished ", statusLine($s), "\n";
    break;

case "coalesce":
    // ARGS: GATE. Two foreground tasks with the same unique: the worker
    // runs one job and both tasks receive its result. The gate is opened
    // once both tasks are attached to the job.
    $gate = $args[0];
    $handles = [];
    $c->setCreatedCallback(function (GearmanTask $t, $x) use (&$handles, $gate) {
        $handles[] = $t->jobHandle();
        if (count($handles) == 2) {
            openGate($gate);
        }
    });
    $c->setCompleteCallback(function (GearmanTask $t, $x) { echo "$x complete ", $t->data(), "\n"; });
    $c->setFailCallback(function (GearmanTask $t, $x) { echo "$x fail\n"; });
    $c->addTask("php_gated", "$gate|same", "a", "fg-uniq");
    $c->addTask("php_gated", "$gate|same", "b", "fg-uniq");
    $ok = $c->runTasks();
    echo "runTasks ", var_export($ok, true), "\n";
    echo "created ", count($handles), " same handle ",
        (count($handles) == 2 && $handles[0] === $handles[1] ? "yes" : "no"), "\n";
    break;

default:
    fwrite(STDERR, "unknown scenario $scenario\n");
    exit(2);
}
