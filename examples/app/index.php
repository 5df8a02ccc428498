<?php
// brine-demo: the page the fleet deploys. The revision is read from the
// checkout this file was served from (its .git/HEAD, detached at the
// deployed commit), so the page names the release that answered, and
// php=42 proves PHP ran rather than nginx sending this file as text.
function deployed_rev(string $dir): string
{
    $head = @file_get_contents($dir . '/.git/HEAD');
    if ($head === false) {
        return 'unknown';
    }
    $head = trim($head);
    if (str_starts_with($head, 'ref: ')) {
        $ref = @file_get_contents($dir . '/.git/' . substr($head, 5));
        return $ref === false ? 'unknown' : trim($ref);
    }
    return $head;
}
header('Content-Type: text/plain');
header('Cache-Control: no-store');
?>
brine-demo rev=<?php echo deployed_rev(__DIR__); ?> php=<?php echo 6*7; ?>
