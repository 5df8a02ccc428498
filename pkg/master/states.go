package master

func (m *Master) setupStates() error { return nil }
