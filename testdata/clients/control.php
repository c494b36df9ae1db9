<?php
// Drives the sidecar's control functions (gearsched.schedule and
// gearsched.cancel) through gearmand with GearmanClient, for
// TestControlFromPHP in cmd/gearsched/control_test.go.
//
// Usage: php control.php HOST:PORT FUNCTION
//
// HOST:PORT is gearmand (not the sidecar); FUNCTION is the function the
// scheduled jobs are for. Each line of output is "key: value"; the Go test
// reads the values. Jobs scheduled, with their data:
//
//   from-php-normal      "in": "2s", priority high, through doNormal
//   from-php-background  "at": time()+2, through doBackground
//   from-php-cancelled   "in": "4s", cancelled at once through doNormal
//   from-php-sentinel    "in": "6s": due after the cancelled one, so the
//                        test knows the cancelled one's time has passed

if ($argc != 3) {
    fwrite(STDERR, "usage: control.php HOST:PORT FUNCTION\n");
    exit(2);
}
[$host, $port] = explode(":", $argv[1], 2);
$port = (int)$port;
$fn = $argv[2];

// client returns a GearmanClient on gearmand. pecl-gearman's addServer
// sends the "exceptions" server option unless its third argument is false.
function client(string $host, int $port, bool $exceptions = true, int $timeoutMs = 10000): GearmanClient {
    $c = new GearmanClient();
    $c->addServer($host, $port, $exceptions);
    $c->setTimeout($timeoutMs);
    return $c;
}

function out(string $key, $value): void {
    echo $key, ": ", is_string($value) ? $value : var_export($value, true), "\n";
}

function schedule(string $fn, array $fields): string {
    return json_encode(["function" => $fn] + $fields, JSON_UNESCAPED_SLASHES);
}

$c = client($host, $port);

// (a) A foreground call: the result is the sidecar's JSON.
$r = $c->doNormal("gearsched.schedule", schedule($fn, [
    "in" => "2s", "data" => "from-php-normal", "unique" => "php-normal-$fn", "priority" => "high",
]));
out("normal rc", $c->returnCode());
out("normal result", $r);

// (b) A background call: gearmand's handle; the result is not seen.
$h = $c->doBackground("gearsched.schedule", schedule($fn, [
    "at" => time() + 2, "data" => "from-php-background", "unique" => "php-background-$fn",
]));
out("background rc", $c->returnCode());
out("background handle", $h);

// (d) Schedule, then cancel by the sidecar's handle; cancelling again
// fails.
$r = $c->doNormal("gearsched.schedule", schedule($fn, [
    "in" => "4s", "data" => "from-php-cancelled", "unique" => "php-cancelled-$fn",
]));
out("to cancel rc", $c->returnCode());
out("to cancel result", $r);
$handle = json_decode((string)$r, true)["handle"] ?? "";
$r = $c->doNormal("gearsched.cancel", $handle);
out("cancel rc", $c->returnCode());
out("cancel result", $r);
$r = $c->doNormal("gearsched.cancel", $handle);
out("cancel again rc", $c->returnCode());
out("cancel again result", $r);

$r = $c->doNormal("gearsched.schedule", schedule($fn, [
    "in" => "6s", "data" => "from-php-sentinel", "unique" => "php-sentinel-$fn",
]));
out("sentinel rc", $c->returnCode());
out("sentinel result", $r);

// (c) Bad input fails the job (WORK_FAIL), with or without the exceptions
// option; the reason comes first as WORK_WARNING, which a task's warning
// callback receives.
$bad = schedule($fn, ["in" => "soon", "data" => "never"]);
$r = $c->doNormal("gearsched.schedule", $bad);
out("bad rc", $c->returnCode());
out("bad result", $r);

$t = client($host, $port);
$t->setWarningCallback(function (GearmanTask $task) { out("bad task warning", $task->data()); });
$t->setFailCallback(function (GearmanTask $task) { out("bad task fail", "yes"); });
$t->setCompleteCallback(function (GearmanTask $task) { out("bad task complete", $task->data()); });
$t->addTask("gearsched.schedule", $bad);
out("bad task runTasks", $t->runTasks());

$n = client($host, $port, false, 3000);
$r = @$n->doNormal("gearsched.schedule", $bad);
out("bad no-exceptions rc", $n->returnCode());
out("bad no-exceptions result", $r);

out("done", "yes");
