#!/usr/bin/perl
# Worker for the integration tests (cmd/gearsched/clients_test.go), using
# Gearman::Worker (libgearman-client-perl).
#
# Usage: perl perl_worker.pl HOST PORT COUNT
#
# Runs exactly COUNT jobs, printing "job FUNCTION ARG" for each, then exits 0.
use strict;
use warnings;
use Gearman::Worker;

@ARGV == 3 or die "usage: perl_worker.pl HOST PORT COUNT\n";
my ($host, $port, $count) = @ARGV;
$| = 1;

my $done   = 0;
my $worker = Gearman::Worker->new(
    job_servers => [ { host => $host, port => $port } ],
    client_id   => 'perl-worker',
);

# pl_rev returns the reversed argument.
$worker->register_function(pl_rev => sub {
    my $arg = $_[0]->arg;
    print "job pl_rev $arg\n";
    return scalar reverse $arg;
}) or die "register pl_rev failed\n";

# pl_fail fails the job (returning undef sends WORK_FAIL).
$worker->register_function(pl_fail => sub {
    print "job pl_fail ", $_[0]->arg, "\n";
    return undef;
}) or die "register pl_fail failed\n";

# pl_rec records the order in which jobs are handed out.
$worker->register_function(pl_rec => sub {
    my $arg = $_[0]->arg;
    print "job pl_rec $arg\n";
    return $arg;
}) or die "register pl_rec failed\n";

# pl_result returns "0" for the argument "zero", "" for "empty", and the
# argument itself otherwise (Gearman::Client cannot submit "0": it sends
# a false argument as ""). Gearman::Worker sends a false result ("0" or
# "") as a WORK_COMPLETE holding the job handle alone, without the NUL
# and without the data: a "0" reaches the client as "".
$worker->register_function(pl_result => sub {
    my $arg = $_[0]->arg;
    print "job pl_result $arg\n";
    return $arg eq "zero" ? "0" : $arg eq "empty" ? "" : $arg;
}) or die "register pl_result failed\n";

$worker->work(
    on_complete => sub { $done++ },
    on_fail     => sub { $done++ },
    stop_if     => sub { $done >= $count },
);
print "worker done\n";
